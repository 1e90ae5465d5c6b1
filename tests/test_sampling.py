"""Tests for twisted_dht.sampling: BEP 51 replies, and the polite walk on a simulated
network of indexable nodes, then on an in-memory DHT."""

from __future__ import annotations

import itertools
import random
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_dht import krpc
from twisted_dht.addresses import Address
from twisted_dht.errors import KRPCError, MalformedMessage, QueryTimeout
from twisted_dht.krpc import Response
from twisted_dht.nodeid import distance
from twisted_dht.sampling import (
    MAX_INTERVAL,
    SampleWalk,
    WalkResult,
    parseSampleReply,
    sampleInfoHashes,
)

from .test_node import Swarm, addressOf

PEER: Address = ("10.0.0.9", 6881)


def reply(values: dict[bytes, Any] | None = None, **more: Any) -> Response:
    """A reply from node 0x22... with C{values} and C{more} (str keys)."""
    fields = {key.encode(): value for key, value in more.items()}
    return Response(b"tt", {b"id": b"\x22" * 20, **(values or {}), **fields})


class ParseTests(SynchronousTestCase):
    def test_reply(self) -> None:
        """samples are split into 20-byte info_hashes; interval, num and the nodes of the
        responder's family are read."""
        node = krpc.packNode(b"\x33" * 20, ("10.0.0.3", 7000))
        parsed = parseSampleReply(
            PEER, reply(samples=b"a" * 20 + b"b" * 20, interval=300, num=7, nodes=node)
        )
        self.assertEqual(parsed.samples, [b"a" * 20, b"b" * 20])
        self.assertEqual((parsed.interval, parsed.num, parsed.address), (300, 7, PEER))
        self.assertEqual(parsed.nodes, [(b"\x33" * 20, ("10.0.0.3", 7000))])
        self.assertEqual(parsed.nodeId, b"\x22" * 20)

    def test_intervalClamped(self) -> None:
        """An interval outside 0-21,600 s is clamped; a missing one is 0."""
        self.assertEqual(parseSampleReply(PEER, reply(samples=b"", interval=10**9)).interval,
                         MAX_INTERVAL)  # fmt: skip
        self.assertEqual(parseSampleReply(PEER, reply(samples=b"", interval=-5)).interval, 0)
        self.assertEqual(parseSampleReply(PEER, reply(samples=b"")).interval, 0)

    def test_notBEP51(self) -> None:
        """A reply without samples (a find_node answer), or with malformed fields, is
        refused."""
        for values in ({}, {b"samples": b"x" * 21}, {b"samples": b"", b"interval": b"1"}):
            self.assertRaises(MalformedMessage, parseSampleReply, PEER, reply(values))

    def test_oneQuery(self) -> None:
        """sampleInfoHashes sends one query with the target and parses its reply."""
        sent: list[tuple[Address, bytes, dict[bytes, Any]]] = []
        answer: Deferred[Response] = Deferred()

        def send(
            address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
        ) -> Deferred[Response]:
            sent.append((address, method, args))
            return answer

        result = sampleInfoHashes(send, PEER, b"\x44" * 20)
        answer.callback(reply(samples=b"c" * 20, interval=60))
        self.assertEqual(sent, [(PEER, b"sample_infohashes", {b"target": b"\x44" * 20})])
        self.assertEqual(self.successResultOf(result).samples, [b"c" * 20])
        self.assertRaises(ValueError, sampleInfoHashes, send, PEER, b"short")


class Indexer:
    """A simulated BEP 51 node: what it stores, the interval it asks for, how it fails."""

    def __init__(self, nodeId: bytes, address: Address, infoHashes: list[bytes]) -> None:
        self.nodeId = nodeId
        self.address = address
        self.infoHashes = infoHashes
        self.interval = 21600
        self.behaviour = "normal"
        self.known: list[Indexer] = []
        self.asked: list[float] = []


class IndexerNetwork:
    """Indexers answering sample_infohashes on a Clock, each after 50 ms."""

    def __init__(self, clock: Clock, size: int, perNode: int = 3, seed: int = 1) -> None:
        self.clock = clock
        rng = random.Random(seed)
        self.nodes: dict[Address, Indexer] = {}
        for i in range(size):
            address = (f"10.{i // 200}.{i % 200}.1", 6881)
            hashes = [rng.randbytes(20) for _ in range(perNode)]
            self.nodes[address] = Indexer(rng.randbytes(20), address, hashes)
        everyone = list(self.nodes.values())
        for node in everyone:
            node.known = rng.sample([n for n in everyone if n is not node], min(12, size - 1))
        self.sent: list[tuple[float, Address, bytes]] = []
        self.cancelled = 0

    def stored(self) -> set[bytes]:
        return {h for node in self.nodes.values() for h in node.infoHashes}

    def send(
        self, address: Address, method: bytes, args: dict[bytes, Any], timeout: float | None
    ) -> Deferred[Response]:
        assert method == b"sample_infohashes"
        target = args[b"target"]
        now = self.clock.seconds()
        self.sent.append((now, address, target))
        node = self.nodes[address]
        node.asked.append(now)
        if node.behaviour == "error":
            return fail(KRPCError(204, "Method Unknown"))
        calls: list[IDelayedCall] = []

        def cancel(_: Deferred[Response]) -> None:
            self.cancelled += 1
            calls[0].cancel()

        d: Deferred[Response] = Deferred(cancel)
        if node.behaviour == "silent":
            calls.append(self.clock.callLater(5, d.errback, QueryTimeout("no reply")))
            return d
        nearest = sorted(node.known, key=lambda n: distance(n.nodeId, target))[:8]
        values: dict[bytes, Any] = {
            b"id": node.nodeId,
            b"nodes": b"".join(krpc.packNode(n.nodeId, n.address) for n in nearest),
        }
        if node.behaviour != "findNodeOnly":
            values.update(interval=node.interval, num=len(node.infoHashes))
            values = {k if isinstance(k, bytes) else k.encode(): v for k, v in values.items()}
            values[b"samples"] = b"".join(node.infoHashes[:20])
        calls.append(self.clock.callLater(0.05, d.callback, Response(b"tt", values)))
        return d


class WalkTests(SynchronousTestCase):
    """SampleWalk on a simulated network of indexers."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.network = IndexerNetwork(self.clock, 120)
        self.found: list[tuple[bytes, Address]] = []

    def walk(self, seeds: int = 3, **budget: Any) -> WalkResult:
        """Walk from the first C{seeds} indexers until the walk ends."""
        first = list(self.network.nodes.values())[:seeds]
        walk = SampleWalk(
            self.network.send,
            [(n.nodeId, n.address) for n in first],
            reactor=self.clock,
            onSample=lambda infoHash, source: self.found.append((infoHash, source)),
            rng=random.Random(2),
            **budget,
        )
        d = walk.start()
        for _ in range(100000):
            if d.called:
                break
            self.clock.advance(0.05)
        result: WalkResult = self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        return result

    def test_collectsEverything(self) -> None:
        """A walk finds every info_hash the network stores, each once with the node that
        holds it, asking every node once, then ends: nobody is left to ask."""
        result = self.walk()
        self.assertEqual({h for h, _ in self.found}, self.network.stored())
        self.assertEqual(len(self.found), len(self.network.stored()))
        for infoHash, source in self.found:
            self.assertIn(infoHash, self.network.nodes[source].infoHashes)
        self.assertEqual(sorted(len(n.asked) for n in self.network.nodes.values())[-1], 1)
        self.assertEqual(result.reason, "exhausted")
        self.assertEqual((result.queries, result.replies), (120, 120))
        self.assertEqual(result.infoHashes, 360)

    def test_honoursEachInterval(self) -> None:
        """No node is asked again before the interval it gave, nor before a minute when
        it asked for less."""
        for i, node in enumerate(self.network.nodes.values()):
            node.interval = (0, 90, 200)[i % 3]
        self.walk(duration=600, rate=50)
        again = 0
        for i, node in enumerate(self.network.nodes.values()):
            wait = max((0, 90, 200)[i % 3], 60)
            gaps = [b - a for a, b in zip(node.asked, node.asked[1:], strict=False)]
            self.assertTrue(all(gap >= wait for gap in gaps), (wait, gaps))
            again += len(gaps)
        self.assertGreater(again, 120)

    def test_rate(self) -> None:
        """Queries go out at most rate per second."""
        result = self.walk(rate=4)
        times = [t for t, _, _ in self.network.sent]
        self.assertTrue(all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times)))
        self.assertGreaterEqual(times[-1] - times[0], (result.queries - 1) * 0.25 - 1e-9)

    def test_spreadTargets(self) -> None:
        """Consecutive targets go through the 256 id prefixes before one comes back."""
        network = IndexerNetwork(self.clock, 300, perNode=1)
        self.network = network
        self.walk(maxQueries=256, rate=50)
        prefixes = [target[0] for _, _, target in network.sent]
        self.assertEqual(sorted(prefixes), list(range(256)))
        self.assertGreater(abs(prefixes[0] - prefixes[1]), 32)

    def test_budgets(self) -> None:
        """The walk stops at its query, info_hash and time budgets."""
        result = self.walk(maxQueries=10)
        self.assertEqual(
            (result.reason, result.queries, len(self.network.sent)), ("queries", 10, 10)
        )
        self.network = IndexerNetwork(self.clock, 120)
        self.found.clear()
        result = self.walk(maxInfoHashes=50)
        self.assertEqual((result.reason, result.infoHashes, len(self.found)), ("count", 50, 50))
        self.network = IndexerNetwork(self.clock, 120)
        start = self.clock.seconds()
        result = self.walk(duration=4.0, rate=2)
        self.assertEqual(result.reason, "time")
        self.assertLessEqual(self.clock.seconds() - start, 4.0 + 1e-9)
        self.assertLessEqual(result.queries, 9)

    def test_failingNodesNotAskedAgain(self) -> None:
        """A node that timed out, gave an error or has no BEP 51 is asked once only."""
        nodes = list(self.network.nodes.values())
        for node, behaviour in zip(
            nodes[3:9], ["silent", "error", "findNodeOnly"] * 2, strict=True
        ):
            node.behaviour = behaviour
            node.interval = 0
        for node in nodes:
            node.interval = 0
        self.walk(duration=300, rate=20)
        for node in nodes[3:9]:
            self.assertEqual(len(node.asked), 1, node.behaviour)
        self.assertGreater(len(nodes[20].asked), 1)

    def test_oneNodePerIP(self) -> None:
        """Two ports of one IP are one node: asked once."""
        nodes = list(self.network.nodes.values())
        twin = Indexer(b"\x01" * 20, (nodes[0].address[0], 7000), [b"\x02" * 20])
        self.network.nodes[twin.address] = twin
        nodes[1].known.append(twin)
        self.walk()
        self.assertEqual(len(nodes[0].asked) + len(twin.asked), 1)

    def test_cancel(self) -> None:
        """Cancelling a walk fails it with CancelledError at once, cancels its queries in
        flight and leaves no timer."""
        first = next(iter(self.network.nodes.values()))
        walk = SampleWalk(self.network.send, [(first.nodeId, first.address)], reactor=self.clock)
        d = walk.start()
        self.clock.advance(0.01)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.network.cancelled, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertRaises(RuntimeError, walk.start)

    def test_noSeeds(self) -> None:
        """A walk with nobody to ask ends at once."""
        walk = SampleWalk(self.network.send, [], reactor=self.clock)
        self.assertEqual(self.successResultOf(walk.start()).reason, "exhausted")

    def test_badRate(self) -> None:
        """The rate must be positive."""
        self.assertRaises(
            ValueError, SampleWalk, self.network.send, [], reactor=self.clock, rate=0
        )


class NodeSamplingTests(SynchronousTestCase):
    """DHTNode's BEP 51 client against DHTNodes on an in-memory network."""

    def test_walkFindsWhatTheDHTStores(self) -> None:
        """A node's walk collects every info_hash announced on a 40-node DHT; asking the
        same nodes again at once gets nothing new and no node drops a query."""
        swarm = Swarm(40, seed=8)
        swarm.join(spacing=0.2)
        rng = random.Random(9)
        stored = {rng.randbytes(20) for _ in range(25)}
        for i, infoHash in enumerate(sorted(stored)):
            swarm.wait(swarm.nodes[1 + i].announce(infoHash, 6881))
        walker = swarm.nodes[39]
        found: dict[bytes, Address] = {}
        result = swarm.wait(walker.walkSamples(found.setdefault, rate=20, duration=60), 100)
        self.assertEqual(set(found), stored)
        self.assertEqual(result.replies, result.queries)
        self.assertGreaterEqual(result.replies, 30)
        self.assertEqual(sum(n.stats().sampleRepeats["dropped"] for n in swarm.nodes), 0)
        self.assertEqual(result.reason, "exhausted")
        # Asking a node again at once: the cached sample once, then no reply at all.
        again = swarm.wait(walker.sampleInfoHashes(addressOf(5)))
        self.assertEqual(again.interval, 21600)
        failure = swarm.wait(walker.sampleInfoHashes(addressOf(5)))
        self.assertIsInstance(failure.value, QueryTimeout)
        self.assertEqual(swarm.nodes[5].stats().sampleRepeats, {"cached": 1, "dropped": 1})
        swarm.stop()
        self.assertEqual(swarm.clock.getDelayedCalls(), [])

    def test_stopCancelsWalks(self) -> None:
        """Stopping a node cancels its walks."""
        swarm = Swarm(5, seed=10)
        swarm.join(spacing=0.2)
        walk = swarm.nodes[4].walkSamples(rate=0.1)
        swarm.nodes[4].stop()
        self.failureResultOf(walk, CancelledError)
        swarm.stop()
